"""How bytes enter the store: a multipart form, a tus append at an offset, tus parts joined."""
