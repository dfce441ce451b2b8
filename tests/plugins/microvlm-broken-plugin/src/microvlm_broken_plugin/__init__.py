"""A plugin that fails to import, on purpose."""

raise ImportError("microvlm-broken-plugin is broken on purpose (test fixture)")
