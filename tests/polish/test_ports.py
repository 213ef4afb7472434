"""The port rule (app.stack.ports) and the image split (app.stack.imageref): no engine needed."""

from __future__ import annotations

from app.stack import imageref
from app.stack import ports
from app.stack.model import Port


def _range(first: int, last: int, ip: str = "") -> list[Port]:
    return [Port(ip, str(p), str(p)) for p in range(first, last + 1)]


def test_a_range_folds_into_one_entry_with_the_full_list_on_demand():
    shown = ports.views([*_range(8080, 8099), Port("", "9000", "80")], "app:1", "example.lan")
    assert [v.label for v in shown] == ["8080–8099→8080–8099", "9000→80"]
    assert len(shown[0].members) == 20 and shown[0].members[0] == "8080→8080" and not shown[1].folded
    assert shown[0].url == "http://example.lan:8080/"
    # not consecutive, or another address: not folded
    assert len(ports.fold([Port("", "1", "1"), Port("", "3", "3")])) == 2
    assert len(ports.fold([Port("", "1", "1"), Port("127.0.0.1", "2", "2")])) == 2
    assert ports.views([Port("", "8000-8010", "80")], "x", "h")[0].label == "8000–8010→80"


def test_links_only_where_they_can_work():
    host = "stack.example"
    (web,) = ports.views([Port("", "8080", "80")], "nginx:1", host)
    assert (web.kind, web.url) == ("link", "http://stack.example:8080/")
    (secure,) = ports.views([Port("0.0.0.0", "8443", "8443")], "app", host)
    assert secure.url == "https://stack.example:8443/"
    for port, image in (
        ("5432", "postgres:16"),
        ("6379", "redis"),
        ("27017", "mongo"),
        ("7687", "neo4j:5"),
        ("3306", "mariadb"),
    ):
        (db,) = ports.views([Port("", port, port)], image, host)
        assert (db.kind, db.url, db.copy) == ("text", "", f"{host}:{port}"), port
    (odd,) = ports.views([Port("", "15432", "5432")], "postgis/postgis:16", host)  # a database on another host port
    assert odd.kind == "text"
    (local,) = ports.views([Port("127.0.0.1", "5678", "5678")], "n8n", host)
    assert (local.kind, local.url, local.copy) == ("server", "", "127.0.0.1:5678")
    (here,) = ports.views([Port("127.0.0.1", "5678", "5678")], "n8n", "localhost")  # the browser is on the server
    assert here.url == "http://localhost:5678/"
    (lan,) = ports.views([Port("192.168.1.20", "3000", "3000")], "grafana", host)
    assert lan.url == "http://192.168.1.20:3000/"
    (udp,) = ports.views([Port("", "53", "53", "udp")], "dns", host)
    assert udp.kind == "text"
    (ephemeral,) = ports.views([Port("", "", "80")], "x", host)
    assert ephemeral.kind == "any"
    (plain,) = ports.views([Port("", "80", "80")], "x", host)
    assert plain.url == "http://stack.example/"


def test_behind_a_proxy_the_name_is_used_only_where_the_ports_are():
    assert ports.link_host("stackpilot.home.lan") == "stackpilot.home.lan"
    assert ports.link_host("stackpilot.home.lan", via_proxy=True, proxy_here=False) is None
    assert ports.link_host("stackpilot.home.lan", via_proxy=True, proxy_here=True) == "stackpilot.home.lan"
    assert ports.link_host("ui.lan", engine_host="nas.lan") == "nas.lan"
    (n8n,) = ports.views([Port("", "5678", "5678")], "n8n", None)
    assert (n8n.kind, n8n.url, n8n.copy) == ("text", "", "5678")


def test_image_reference_split():
    ref = imageref.parse("ghcr.io/seeds-magi/magi-backend:latest@sha256:abc")
    assert (ref.registry, ref.path, ref.name, ref.tag, ref.digest) == (
        "ghcr.io",
        "seeds-magi",
        "magi-backend",
        "latest",
        "sha256:abc",
    )
    assert ref.short == "magi-backend:latest" and ref.has_details
    hub = imageref.parse("postgres")
    assert (hub.short, hub.has_details) == ("postgres:latest", False)
    assert imageref.parse("library/redis:7").short == "redis:7"
    assert imageref.parse("localhost:5000/team/app:2").registry == "localhost:5000"
    assert imageref.parse("supabase/studio:2024").path == "supabase"
