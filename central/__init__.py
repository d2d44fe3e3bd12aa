"""The central service, in rooms: ``store`` (tables, engines, migrations), ``certification``
(results in, device trust, template requests), ``people`` (roster, registries), ``payments``
(monthly runs, holds, bank files) and ``fraud`` (duplicate faces, flags); ``config``,
``bootstrap`` and ``cli`` assemble them (docs/design.md, "``central/``")."""
