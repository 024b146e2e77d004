"""FlowLoom's core node types, one module per family.

Each module is registered through the `flowloom.nodes` entry points (see `engine.registry`):
`triggers`, `data`, `logic`, `flow`, `http` and `ai`.
"""
