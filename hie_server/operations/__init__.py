"""FHIR operations contributed as `FhirModule`s (one module per area, e.g. `empi`)."""
