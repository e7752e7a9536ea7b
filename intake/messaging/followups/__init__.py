"""Follow-up sequences: the pure schedule (`schedule`) and the rows that carry it in the database (`rows`)."""
