import os
import sys

# bench modules import their shared helpers (amf_cases, ...) by name
sys.path.insert(0, os.path.dirname(__file__))
