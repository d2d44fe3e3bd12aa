"""Central's staff console: a web UI over a JSON API, served over HTTPS to staff
certificates only (``central.console.server``), every endpoint authorised from one table
(``central.console.access``)."""
