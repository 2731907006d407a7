"""The pure core: events, the data contract and the decisions on them. No I/O."""
