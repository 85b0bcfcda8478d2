"""``civicpin requests import (owned by the analytics work)``."""
