"""usermgr: administer an application's user accounts from the command line."""

__version__ = "0.2.0"
