"""`mvcap build`: every stage from one YAML file, in order, each reading what the last committed."""
