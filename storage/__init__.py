"""FlowLoom's storage: SQLAlchemy models, migrations, repositories and credential encryption."""
