"""telemedicine: remote registration (远程挂号) and remote consultation (远程会诊) with two-way referral.

Schedules and slots (号源) from templates with a holiday calendar (`templates`, `calendar`,
`publish`); `$find`/`$book`/`$cancel`/reschedule/status changes (`find`, `booking`,
`appointments`); the consultation workflow (`consultation`); Communications and rest-hook
webhooks (`notify`); the WS/T 483.19 会诊记录 export (`export`). Functions take a
`ResourceRepository` and run inside the caller's unit of work; `hie_server` wires them to
HTTP (`hie_server/operations/telemedicine.py`) and the CLI (`hie telemedicine …`).

Layering: a peer of adapters and imaging (never imports them); imports only the public APIs
of `terminology` and `ehr_store`. May import: the standard library, pydantic, httpx.
"""

from telemedicine.appointments import cancel, remind, reschedule, set_status, stop_clinic
from telemedicine.booking import Actor, BookRequest, Result, book, charge_item_id, golden_patient
from telemedicine.calendar import HolidayCalendar, load_calendar, parse_calendar
from telemedicine.consultation import (
    ConsultationRequest,
    record_opinion,
    refer,
    request_consultation,
    require_invited,
    respond,
    schedule,
    task_of,
)
from telemedicine.errors import RetryBooking, SlotUnavailable, WorkflowError
from telemedicine.export import consultation_record
from telemedicine.fhir import BOOKING_ID_SYSTEM, EVENT_SYSTEM, POOL_SYSTEM
from telemedicine.find import FindQuery, find_slots
from telemedicine.notify import Dispatcher, communication, criteria_match
from telemedicine.publish import PublishReport, publish, schedule_id, slot_id
from telemedicine.service import TelemedicineService
from telemedicine.settings import TelemedicineSettings
from telemedicine.templates import (
    PlannedSlot,
    ScheduleTemplate,
    SessionTemplate,
    StopClinic,
    plan_slots,
    reserved_indices,
    template_from_json,
)

__all__ = [
    "BOOKING_ID_SYSTEM",
    "EVENT_SYSTEM",
    "POOL_SYSTEM",
    "Actor",
    "BookRequest",
    "ConsultationRequest",
    "Dispatcher",
    "FindQuery",
    "HolidayCalendar",
    "PlannedSlot",
    "PublishReport",
    "Result",
    "RetryBooking",
    "ScheduleTemplate",
    "SessionTemplate",
    "SlotUnavailable",
    "StopClinic",
    "TelemedicineService",
    "TelemedicineSettings",
    "WorkflowError",
    "book",
    "cancel",
    "charge_item_id",
    "communication",
    "consultation_record",
    "criteria_match",
    "find_slots",
    "golden_patient",
    "load_calendar",
    "parse_calendar",
    "plan_slots",
    "publish",
    "record_opinion",
    "refer",
    "remind",
    "request_consultation",
    "require_invited",
    "reschedule",
    "reserved_indices",
    "respond",
    "schedule",
    "schedule_id",
    "set_status",
    "slot_id",
    "stop_clinic",
    "task_of",
    "template_from_json",
]
