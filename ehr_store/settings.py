"""Store settings section (composed into `hie_server.settings.HieSettings` as `store`).

May import: pydantic, the standard library.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StoreSettings(BaseModel):
    """Database and search settings. Env: `HIE_DATABASE_URL`, `HIE_STORE__POOL_SIZE`, ...

    `database_url`: SQLAlchemy URL; `sqlite:///var/hie.db` (default, embedded) or
    `postgresql+psycopg://user:pass@host:5432/db`.
    """

    model_config = ConfigDict(frozen=True)

    database_url: str = "sqlite:///var/hie.db"
    pool_size: int = Field(default=10, ge=1, description="PostgreSQL connection pool size")
    max_overflow: int = Field(default=10, ge=0)
    echo_sql: bool = False
    default_timezone: str = Field(
        default="Asia/Shanghai", description="Zone for search date values and times sent without an offset"
    )
    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
