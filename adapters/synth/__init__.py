"""adapters.synth: the project's own synthetic HL7 v2 feed generator (`hie synth`).

Residents of Qingyuan's eight county-level units, a dozen sending facilities with their own
MRN schemes, charsets, terminators and quirks, ADT/ORU/ORM/VXU/MDM/SIU/DFT messages, a few
malformed ones, and a truth file saying what each message is and what should happen to it.
Pure Python and deterministic per seed. All names and numbers are invented.

May import: `ehr_store` (public API and `ehr_store.resident_id`), the standard library.
"""

from adapters.synth.facilities import FACILITIES, FACILITY_BY_CODE, Facility
from adapters.synth.residents import Resident
from adapters.synth.writer import FeedSummary, generate_feed

__all__ = ["FACILITIES", "FACILITY_BY_CODE", "Facility", "FeedSummary", "Resident", "generate_feed"]
