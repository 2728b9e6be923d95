"""ChimeraX bundle entry point: registers the commands listed in pyproject.toml."""

from chimerax.core.toolshed import BundleAPI


class _DynaProtAPI(BundleAPI):
    api_version = 1

    @staticmethod
    def register_command(bi, ci, logger):
        from dynaprot_viz.plugin.chimerax import adapter

        # ChimeraX calls this once per command listed in pyproject.toml, when first used
        adapter.register_command(ci.name, logger)


bundle_api = _DynaProtAPI()
