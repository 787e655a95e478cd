"""Input data: the schema, its readers/writers and dataset adapters."""
