"""Telemedicine settings section (composed into `hie_server.settings.HieSettings` as `telemedicine`).

Env: `HIE_TELEMEDICINE__WEBHOOK_URL`, `HIE_TELEMEDICINE__HOLIDAY_CALENDAR`, ...

May import: pydantic, the standard library.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class TelemedicineSettings(BaseModel):
    """Scheduling, booking and notification settings.

    `timezone`: the zone of schedule templates (clinic hours are local time).
    `holiday_calendar`: JSON file of public holidays and 调休 working days (default: the shipped
    `telemedicine/data/holidays-cn.json`, 2026 official, 2027 statutory days only).
    `registration_fee`: default 挂号费 in CNY when a template names none.
    `webhook_url`: every telemedicine Communication is POSTed there (FHIR JSON, rest-hook) in
    addition to active `Subscription`s with a rest-hook channel; `webhook_retries` attempts with
    exponential backoff from `webhook_backoff_seconds`.
    `book_attempts`: optimistic-concurrency retries of one booking before answering 409.
    """

    model_config = ConfigDict(frozen=True)

    timezone: str = "Asia/Shanghai"
    holiday_calendar: Path | None = None
    registration_fee: Decimal = Field(default=Decimal("10.00"), ge=0)
    webhook_url: str | None = None
    webhook_retries: int = Field(default=5, ge=1, le=20)
    webhook_backoff_seconds: float = Field(default=0.5, gt=0)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    book_attempts: int = Field(default=30, ge=1)
    find_max_results: int = Field(default=200, ge=1, le=1000)
