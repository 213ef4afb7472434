import pytest

from tests.conftest import PREFIX
from tests.conftest import leftovers


@pytest.mark.docker
def test_no_test_resources_left_behind(docker_engine):
    left = leftovers(docker_engine)
    assert left == {"containers": [], "networks": [], "volumes": []}, f"{PREFIX} leftovers: {left}"
