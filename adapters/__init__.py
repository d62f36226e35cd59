"""adapters: HL7 v2 in (MLLP and HTTP), decoding, parsing, mapping to FHIR, acknowledgements.

May import: `ehr_store` (public API), the standard library, hl7apy (only in
`adapters.hl7v2.parse` and ACK building), fastapi (only in the HTTP ingest router).
"""
