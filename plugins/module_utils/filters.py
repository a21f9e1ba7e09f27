# -*- coding: utf-8 -*-
# Copyright: podmig developers
# Apache License 2.0 (see LICENSE)
"""Shared by the collection's filter plugins."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def wrap_filter(func, name):
    """``func`` as filter ``podmig.live.<name>``: bad input becomes an AnsibleFilterError naming the filter."""
    def _filter(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AnsibleFilterError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AnsibleFilterError("podmig.live.%s: %s" % (name, exc)) from exc
    _filter.__name__ = name
    _filter.__doc__ = func.__doc__
    return _filter
