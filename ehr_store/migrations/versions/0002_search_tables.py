"""Search index tables: search_token, search_string, search_date, search_reference,
search_quantity, search_number, search_uri (ehr_store/search/tables.py).

Revision ID: 0002_search
Revises: 0001_core
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_search"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
DECIMAL = sa.Numeric(38, 12).with_variant(sa.Float(), "sqlite")
TABLES = ("search_token", "search_string", "search_date", "search_reference", "search_quantity",
          "search_number", "search_uri")


def upgrade() -> None:
    """Create the typed search index tables with their lookup indexes."""
    op.create_table('search_date',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=100), nullable=False),
    sa.Column('start', UTC, nullable=False),
    sa.Column('end', UTC, nullable=False)
    )
    op.create_index('ix_search_date_end', 'search_date', ['resource_type', 'param', 'end'], unique=False)
    op.create_index('ix_search_date_resource', 'search_date', ['resource_type', 'resource_id', 'param'], unique=False)
    op.create_index('ix_search_date_start', 'search_date', ['resource_type', 'param', 'start'], unique=False)
    op.create_table('search_number',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=100), nullable=False),
    sa.Column('value', DECIMAL, nullable=False),
    sa.Column('low', DECIMAL, nullable=False),
    sa.Column('high', DECIMAL, nullable=False)
    )
    op.create_index('ix_search_number_resource', 'search_number', ['resource_type', 'resource_id', 'param'], unique=False)
    op.create_index('ix_search_number_value', 'search_number', ['resource_type', 'param', 'value'], unique=False)
    op.create_table('search_quantity',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=100), nullable=False),
    sa.Column('value', DECIMAL, nullable=False),
    sa.Column('low', DECIMAL, nullable=False),
    sa.Column('high', DECIMAL, nullable=False),
    sa.Column('system', sa.String(length=255), nullable=True),
    sa.Column('code', sa.String(length=255), nullable=True),
    sa.Column('unit', sa.String(length=255), nullable=True)
    )
    op.create_index('ix_search_quantity_resource', 'search_quantity', ['resource_type', 'resource_id', 'param'], unique=False)
    op.create_index('ix_search_quantity_value', 'search_quantity', ['resource_type', 'param', 'value'], unique=False)
    op.create_table('search_reference',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=100), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=True),
    sa.Column('target_id', sa.String(length=64), nullable=True),
    sa.Column('url', sa.String(length=512), nullable=True),
    sa.Column('identifier_system', sa.String(length=255), nullable=True),
    sa.Column('identifier_value', sa.String(length=255), nullable=True)
    )
    op.create_index('ix_search_reference_identifier_value', 'search_reference', ['resource_type', 'param', 'identifier_value'], unique=False)
    op.create_index('ix_search_reference_resource', 'search_reference', ['resource_type', 'resource_id', 'param'], unique=False)
    op.create_index('ix_search_reference_target_id', 'search_reference', ['target_type', 'target_id'], unique=False)
    op.create_index('ix_search_reference_target_id_target_type', 'search_reference', ['resource_type', 'param', 'target_id', 'target_type'], unique=False)
    op.create_index('ix_search_reference_url', 'search_reference', ['resource_type', 'param', 'url'], unique=False)
    op.create_table('search_string',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=100), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('exact', sa.String(length=255), nullable=False)
    )
    op.create_index('ix_search_string_resource', 'search_string', ['resource_type', 'resource_id', 'param'], unique=False)
    op.create_index('ix_search_string_value', 'search_string', ['resource_type', 'param', 'value'], unique=False, postgresql_ops={'value': 'text_pattern_ops'})
    op.create_table('search_token',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=100), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=True),
    sa.Column('code', sa.String(length=255), nullable=True),
    sa.Column('text', sa.Text(), nullable=True)
    )
    op.create_index('ix_search_token_code_system', 'search_token', ['resource_type', 'param', 'code', 'system'], unique=False)
    op.create_index('ix_search_token_resource', 'search_token', ['resource_type', 'resource_id', 'param'], unique=False)
    op.create_table('search_uri',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=100), nullable=False),
    sa.Column('uri', sa.String(length=512), nullable=False)
    )
    op.create_index('ix_search_uri_resource', 'search_uri', ['resource_type', 'resource_id', 'param'], unique=False)
    op.create_index('ix_search_uri_uri', 'search_uri', ['resource_type', 'param', 'uri'], unique=False)


def downgrade() -> None:
    """Drop the search index tables."""
    for name in TABLES:
        op.drop_table(name)
