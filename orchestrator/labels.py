"""Labels on everything tagmatrix creates, so it can find and remove it."""

LABEL_MANAGED = "org.tagmatrix.managed"
LABEL_RUN = "org.tagmatrix.run-id"
LABEL_PID = "org.tagmatrix.pid"
LABEL_HOST = "org.tagmatrix.host"
LABEL_PID_START = "org.tagmatrix.pid-start"  # tells a live owner from a reused PID
LABEL_CELL = "org.tagmatrix.cell"
LABEL_PROJECT_KEY = "org.tagmatrix.project-key"  # a project image: its build key
LABEL_BUILD_KEY = "org.tagmatrix.build-key"  # a cell image: its build key
