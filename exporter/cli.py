"""Command line: flags and subcommands. The only place that exits the process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from exporter import __version__

log = logging.getLogger("exporter")

DEFAULT_CONFIG = "config.yaml"


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="apm-exporter",
        description="Export application performance telemetry to Prometheus.",
        epilog="Subcommands: check-config FILE, schema, metrics-reference, loadtest, report. "
               "Run `apm-exporter SUBCOMMAND --help` for theirs.")
    p.add_argument("--config.file", dest="config_file", default=DEFAULT_CONFIG, metavar="FILE",
                   help="YAML configuration file (default: %(default)s)")
    p.add_argument("--web.listen-address", dest="listen_address", metavar="ADDR",
                   help="address to serve metrics on, overrides web.listen_address (e.g. :9725)")
    p.add_argument("--web.telemetry-path", dest="telemetry_path", metavar="PATH",
                   help="path under which to expose metrics (default /metrics)")
    p.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                   help="TLS and basic-auth configuration (Prometheus exporter-toolkit format)")
    p.add_argument("--web.enable-lifecycle", dest="enable_lifecycle", default=True,
                   action=argparse.BooleanOptionalAction,
                   help="allow POST /-/reload (default: on; --no-web.enable-lifecycle turns it off)")
    p.add_argument("--statsd.mapping-config", dest="statsd_mapping_config", metavar="FILE",
                   help="a statsd_exporter mapping file, read as it is (sets statsd.mapping_config)")
    p.add_argument("--web.enable-profiling", dest="enable_profiling", action="store_true",
                   help="serve /-/profile/cpu and /-/profile/memory (CPU stack samples, tracemalloc); off by default")
    p.add_argument("--log.level", dest="log_level", default="info",
                   choices=["debug", "info", "warn", "error"], help="(default: %(default)s)")
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"],
                   help="(default: %(default)s)")
    p.add_argument("--version", action="version", version=f"apm-exporter {__version__}")
    return p


SUBCOMMANDS = ("check-config", "schema", "metrics-reference", "loadtest", "report")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return _subcommand(args[0], args[1:])
    return _run(_run_parser().parse_args(args))


def _subcommand(name: str, argv: list[str]) -> int:
    if name == "loadtest":
        from exporter.tools import loadtest

        return loadtest.main(argv)
    if name == "report":
        from exporter.tools import report

        return report.main(argv)
    from exporter import config

    if name == "check-config":
        p = argparse.ArgumentParser(prog="apm-exporter check-config",
                                    description="Validate a configuration file; exit 1 with every problem.")
        p.add_argument("file", nargs="?", default=DEFAULT_CONFIG)
        p.add_argument("--statsd.mapping-config", dest="statsd_mapping_config", metavar="FILE",
                       help="also check this statsd_exporter mapping file, as the daemon's flag reads it")
        ns = p.parse_args(argv)
        from exporter.statsd import mapfile

        checks: list[tuple[str, Callable[[str], object], type[config.ConfigError | mapfile.MappingFileError]]] = [
            (ns.file, config.load, config.ConfigError)]
        if ns.statsd_mapping_config:
            checks.append((ns.statsd_mapping_config, mapfile.load, mapfile.MappingFileError))
        for path, check, error in checks:
            try:
                check(path)
            except error as err:
                print(str(err), file=sys.stderr)
                print(f"{path}: {len(err.problems)} problem(s)", file=sys.stderr)
                return 1
            print(f"{path}: OK")
        return 0
    if name == "schema":
        argparse.ArgumentParser(prog="apm-exporter schema",
                                description="Print the JSON Schema of the configuration.").parse_args(argv)
        sys.stdout.write(config.json_schema())
        return 0
    from exporter import reference

    argparse.ArgumentParser(prog="apm-exporter metrics-reference",
                            description="Print the reference of every built-in metric family (Markdown).").parse_args(argv)
    sys.stdout.write(reference.markdown())
    return 0


def _run(ns: argparse.Namespace) -> int:
    from exporter import logs

    logs.setup("warning" if ns.log_level == "warn" else ns.log_level, ns.log_format)
    from exporter import config, webconfig
    from exporter.daemon import Daemon, Overrides
    from exporter.web import Options

    try:
        cfg = config.load(ns.config_file)
    except config.ConfigError as err:
        for problem in err.problems:
            log.error("invalid configuration", extra={"problem": problem})
        return 1
    overrides = Overrides(ns.listen_address, ns.telemetry_path, ns.web_config_file, ns.enable_lifecycle,
                          ns.statsd_mapping_config)
    if ns.statsd_mapping_config:
        from exporter.statsd import mapfile

        try:
            mapfile.load(ns.statsd_mapping_config)
        except mapfile.MappingFileError as err:
            for problem in err.problems:
                log.error("invalid statsd mapping file", extra={"problem": problem})
            return 1
    try:
        web = webconfig.load(ns.web_config_file) if ns.web_config_file else None
    except webconfig.WebConfigError as err:
        log.error("invalid web configuration", extra={"file": ns.web_config_file, "err": str(err)})
        return 1

    routes = {}
    if ns.enable_profiling:
        from exporter import profiling

        routes.update(profiling.routes())

    async def run() -> None:
        daemon = Daemon(ns.config_file, cfg, overrides, web)
        options = Options(
            telemetry_path=daemon.config.web.telemetry_path,
            enable_reload=ns.enable_lifecycle,
            max_concurrent_scrapes=daemon.config.web.max_concurrent_scrapes,
            web_config=web or webconfig.WebConfig(),
            routes=routes,
        )
        await daemon.run(options)

    try:
        asyncio.run(run())
    except OSError as err:  # e.g. the listen address is taken
        log.error("cannot start", extra={"err": str(err)})
        return 1
    return 0
