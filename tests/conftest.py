import os

from hypothesis import settings

# CI runs every property test derandomised so that a run is repeatable; locally
# the examples vary from run to run and may find something new.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=150, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
