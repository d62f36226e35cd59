"""`TelemedicineService`: what the REST operations and the CLI share (settings, holiday calendar,
webhook dispatcher), built once per process from `TelemedicineSettings`.

May import: the standard library, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from ehr_store import Store
from telemedicine.appointments import remind
from telemedicine.calendar import HolidayCalendar, load_calendar
from telemedicine.fhir import Json
from telemedicine.notify import Dispatcher
from telemedicine.publish import PublishReport, publish
from telemedicine.settings import TelemedicineSettings
from telemedicine.templates import ScheduleTemplate


class TelemedicineService:
    """Settings, the holiday calendar and the notification dispatcher for one store."""

    def __init__(self, store: Store, settings: TelemedicineSettings | None = None) -> None:
        self.store = store
        self.settings = settings or TelemedicineSettings()
        self.calendar: HolidayCalendar = load_calendar(self.settings.holiday_calendar)
        self.dispatcher = Dispatcher(self.settings, store)

    @property
    def tz(self) -> str:
        return self.settings.timezone

    def publish(self, template: ScheduleTemplate, first: date, days: int) -> PublishReport:
        """Publish `days` days of slots from `first` in one unit of work (`hie telemedicine publish`)."""
        with self.store.unit_of_work(write=True) as uow:
            report = publish(
                uow.resources, template, first, first + timedelta(days=days - 1), self.calendar, self.tz
            )
            uow.commit()
        return report

    def publish_many(
        self, templates: Sequence[ScheduleTemplate], first: date, days: int
    ) -> list[PublishReport]:
        """Publish several templates (a hospital's whole timetable) in one unit of work: all or
        none are written. Raises: InvalidInput (a bad template; nothing written), store errors."""
        last = first + timedelta(days=days - 1)
        with self.store.unit_of_work(write=True) as uow:
            reports = [publish(uow.resources, t, first, last, self.calendar, self.tz) for t in templates]
            uow.commit()
        return reports

    def send_reminders(self, day: date) -> list[Json]:
        """Record and deliver the reminders for appointments on `day` (run the day before);
        returns the Communications written (none for appointments already reminded)."""
        with self.store.unit_of_work(write=True) as uow:
            results = remind(uow.resources, day, self.tz)
            uow.commit()
        sent = [c for r in results for c in r.communications]
        self.dispatcher.dispatch(sent)
        return sent

    def close(self) -> None:
        """Finish pending webhook deliveries."""
        self.dispatcher.close()
