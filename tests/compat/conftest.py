import os

import pytest

from tests.compat.prometheus_harness import PrometheusNotInstalled, find_prometheus


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    try:
        return find_prometheus()
    except PrometheusNotInstalled:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed: .ci/run installs Debian's prometheus")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
