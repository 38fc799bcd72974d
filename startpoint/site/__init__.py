"""The static leaderboard site, built from the warehouse only (`startpoint site --out DIR`)."""

from startpoint.site.build import SiteSummary, build_site
from startpoint.site.data import SiteDataError

__all__ = ["SiteDataError", "SiteSummary", "build_site"]
