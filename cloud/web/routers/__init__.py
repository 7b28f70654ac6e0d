"""One router per area: auth, pages (fleet, trials, completeness, nodes), admin, the JSON API."""
