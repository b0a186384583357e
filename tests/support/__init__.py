"""Stand-ins for the application on the other side of the completion hooks."""
