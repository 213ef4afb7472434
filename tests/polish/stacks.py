"""A seeded stack like the ones in issue 18: 28+ services with long names, a 20-port range, a
database on loopback, a chain of dependencies with conditions (for the graph)."""

from __future__ import annotations

NAMES = [
    "frontend",
    "discovery",
    "gateway",
    "auth",
    "rest",
    "realtime",
    "storage",
    "imgproxy",
    "meta",
    "functions",
    "analytics",
    "vector",
    "supavisor",
    "studio",
    "kong",
    "mail",
    "scheduler",
    "search",
    "indexer",
    "notifier",
    "billing",
    "reports",
    "exporter",
    "grafana",
    "prometheus",
    "loki",
    "analytics-pipeline-enrichment-worker-with-a-very-long-name",
]


def seeded(web_port: int, db_port: int, cache_port: int) -> str:
    """web (all interfaces, HTTP), db (127.0.0.1 only), cache (6379), a 8080–8099 range, 27 others."""
    lines = ["services:"]

    def svc(name: str, *extra: str) -> None:
        lines.extend(
            [f"  {name}:", "    image: {image}", "    command: ['sleep', '3600']", "    stop_grace_period: 1s", *extra]
        )

    svc("web", f"    ports: ['{web_port}:80']")
    svc(
        "db",
        f"    ports: ['127.0.0.1:{db_port}:5432']",
        "    healthcheck: {test: ['CMD', 'true'], interval: 2s}",
        "    volumes: ['pgdata:/data']",
    )
    svc("cache", f"    ports: ['{cache_port}:6379']")
    svc("ranger", "    ports: ['8080-8099:8080-8099']")
    for i, name in enumerate(NAMES):
        deps = [
            "    depends_on:",
            "      db: {condition: service_healthy}",
            "      cache: {condition: service_started}",
        ]
        if i % 3 == 0 and i:
            deps.append(f"      {NAMES[i - 1]}: {{condition: service_completed_successfully}}")
        svc(name, *deps)
    lines.extend(["volumes:", "  pgdata: {}"])
    return "\n".join(lines) + "\n"
