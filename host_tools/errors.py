# The error every host tool raises for a problem the user can fix: a message and a hint.


class UserError(Exception):
    def __init__(self, message, hint=None, exit_code=2):
        Exception.__init__(self, message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
