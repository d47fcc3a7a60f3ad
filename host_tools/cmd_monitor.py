# `laterne monitor`: not built yet.
from host_tools.errors import UserError


def add_arguments(parser):
    pass


def run(args):
    raise UserError("'monitor' is not available in this version")
