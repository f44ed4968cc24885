import logging
import warnings

# NNI's experiment logger keeps writing to streams pytest has already closed; that is noise, not failure.
logging.raiseExceptions = False
warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")


def pytest_configure(config):
    # Under pytest-xdist every worker is a process of its own: with torch's default thread count each, the
    # workers would contend for the cores (two 2-thread processes on 2 cores run many times slower).
    if hasattr(config, "workerinput"):
        import torch

        torch.set_num_threads(1)
