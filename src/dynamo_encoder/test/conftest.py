"""Frame caches written by the pretraining tests go to a per-session directory, not the user's cache."""

import pytest


@pytest.fixture(autouse=True, scope='session')
def _frame_cache_in_a_temporary_directory(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('XDG_CACHE_HOME', str(tmp_path_factory.mktemp('xdg_cache')))
        yield
