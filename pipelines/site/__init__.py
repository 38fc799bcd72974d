"""The static leaderboard site, built from the warehouse only (`startpoint site --out DIR`)."""

from pipelines.site.build import SiteSummary, build_site
from pipelines.site.data import SiteDataError

__all__ = ["SiteDataError", "SiteSummary", "build_site"]
