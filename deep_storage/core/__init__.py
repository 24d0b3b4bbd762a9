"""The ground floor: settings from the environment (config), every default, the exceptions, UTC
days and their windows, the lake's column contracts and the source's event vocabulary.

Imports nothing from the rest of deep_storage; everything above may import it."""
