"""The whole pipeline on this machine: `make local`, `make demo`, `make report`."""
