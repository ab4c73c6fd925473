"""Stand-in for the get-pip.py bootstrap that ansible-test downloads (its host is not reachable here).

ansible-test runs it inside an empty virtual environment with pip's install arguments. Python's own
ensurepip installs the bundled pip offline; pip then installs the requested versions from the index,
trusting the machine's CA bundle (ansible-test's environment may not carry pip's configuration).
"""
import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
CA_CANDIDATES = (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"),
                 "/etc/ssl/certs/ca-certificates.crt")

ensurepip.bootstrap(upgrade=False)
options = []
ca_bundle = next((path for path in CA_CANDIDATES if path and os.path.isfile(path)), None)
if ca_bundle:
    options += ["--cert", ca_bundle]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *options,
                       *[arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]])
