import logging
import warnings

# NNI's experiment logger keeps writing to streams pytest has already closed; that is noise, not failure.
logging.raiseExceptions = False
warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
