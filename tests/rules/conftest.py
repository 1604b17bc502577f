from tests.rules.raw_tables import _raw_sample_tables_emptied  # noqa: F401 - an autouse fixture
