"""Stand-in for ansible-test's pip bootstrap script (get-pip.py) on machines that cannot reach
ci-files.testing.ansible.com: bootstraps pip from the interpreter's own ensurepip, then runs
`pip install` with the arguments ansible-test passes, honouring get-pip.py's own
`--no-setuptools` / `--no-wheel` options.

The Makefile copies it to ~/.ansible/test/cache/get_pip_<version>.py when that file is missing.
"""

import ensurepip
import os
import subprocess
import sys

if __name__ == "__main__":
    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    env = dict(os.environ)  # ensurepip disables pip's configuration (PIP_CONFIG_FILE=/dev/null) in os.environ
    ensurepip.bootstrap(upgrade=True)
    status = subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env)
    if status == 0 and "--no-setuptools" in sys.argv[1:]:
        status = subprocess.call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"], env=env)
    sys.exit(status)
