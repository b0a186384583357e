"""Stand-ins for what surrounds handoff: the application behind the completion hooks,
a host app that mounts the API, and in-memory fakes of the API's dependencies."""
