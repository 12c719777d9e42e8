"""Kubernetes' own rules for the names, keys and values Fairway puts on pods, in one place:
what the API accepts at the door is what the Kubernetes API server will accept later (a value
it refuses would otherwise be found only when lifecycle creates the pods). Each check returns
None when the value is acceptable, else the reason in words."""

import re

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
# Kubernetes refuses an object whose annotations (keys and values) add up to more.
ANNOTATIONS_TOTAL_MAX = 256 * 1024

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

# An image reference: [host[:port]/]path[:tag][@digest] (the distribution project's grammar).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = (r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
         r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:.]+\])"
         r"(?::[0-9]+)?")
_IMAGE = re.compile(
    rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:"
    r"[0-9a-fA-F]{32,})?$")
IMAGE_MAX = 1024


def dns_label_problem(name: str, max_length: int = DNS_LABEL_MAX) -> str | None:
    if len(name) > max_length:
        return f"must be at most {max_length} characters"
    if not _DNS_LABEL.match(name):
        return ("must be lowercase letters, digits and '-', starting and ending with a letter "
                "or digit")
    return None


def dns_subdomain_problem(name: str) -> str | None:
    if len(name) > DNS_SUBDOMAIN_MAX:
        return f"must be at most {DNS_SUBDOMAIN_MAX} characters"
    if not _DNS_SUBDOMAIN.match(name):
        return ("must be lowercase letters, digits, '-' and '.', starting and ending with a "
                "letter or digit")
    return None


def qualified_name_problem(key: str) -> str | None:
    """A label or annotation key: an optional DNS subdomain prefix and '/', then a name of
    at most 63 characters (letters, digits, '-', '_', '.', starting and ending with a letter
    or digit)."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "the prefix before '/' must not be empty"
    if prefix and (problem := dns_subdomain_problem(prefix)):
        return f"its prefix {problem}"
    if not name:
        return "must not be empty"
    if len(name) > DNS_LABEL_MAX:
        return f"the name after the prefix must be at most {DNS_LABEL_MAX} characters"
    if not _QUALIFIED_NAME.match(name):
        return ("must be letters, digits, '-', '_' and '.', starting and ending with a letter "
                "or digit (with an optional DNS prefix and '/')")
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > LABEL_VALUE_MAX:
        return f"must be at most {LABEL_VALUE_MAX} characters"
    if value and not _QUALIFIED_NAME.match(value):
        return ("must be empty or letters, digits, '-', '_' and '.', starting and ending with "
                "a letter or digit")
    return None


def env_name_problem(name: str) -> str | None:
    if len(name) > DNS_SUBDOMAIN_MAX:
        return f"must be at most {DNS_SUBDOMAIN_MAX} characters"
    if not _ENV_NAME.match(name):
        return "must be letters, digits, '_', '-' and '.', not starting with a digit"
    return None


def image_problem(image: str) -> str | None:
    if len(image) > IMAGE_MAX:
        return f"must be at most {IMAGE_MAX} characters"
    if not _IMAGE.match(image):
        return ("is not an image reference ([registry/]repository[:tag][@digest], the "
                "repository in lowercase)")
    return None
