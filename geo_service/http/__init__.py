"""The geo service's HTTP resources: multipart uploads, tus, and one map of errors to problems."""
