"""`ticketpack search`: find a lottery ticket by IMP with rewinding and save it as a verified artifact."""

from ticketpack.search.artifact import Ticket, load_manifest
from ticketpack.search.config import PruneConfig, SearchConfig
from ticketpack.search.imp import SearchEvent, search

search_ticket = search
from ticketpack.search.manifest import TicketManifest

__all__ = ["PruneConfig", "SearchConfig", "SearchEvent", "Ticket", "TicketManifest", "load_manifest", "search", "search_ticket"]
