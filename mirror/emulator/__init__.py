"""A strict local emulator of the Margen Attack-Data API (real HTTP, real JPEGs, real ledger).

Independent of the rest of ``mirror``: it implements the documented contract from the
reference docs and the OpenAPI spec, so the mirror engine is tested against the contract,
not against its own assumptions.
"""

from mirror.emulator.admin import AdminClient
from mirror.emulator.server import RunningEmulator, main, serve, start_emulator_thread
from mirror.emulator.state import EmulatorConfig

__all__ = ["AdminClient", "EmulatorConfig", "RunningEmulator", "main", "serve", "start_emulator_thread"]
