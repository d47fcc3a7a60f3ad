# `laterne virtual-board`: not built yet.
from host_tools.errors import UserError


def add_arguments(parser):
    pass


def run(args):
    raise UserError("'virtual-board' is not available in this version")
