# Sourced by the r1track EasyR1 launch scripts (needs $PYTHON). EasyR1's config loading fails with omegaconf 2.4
# ("TupleConfig length 2 does not match type hint length 1, full_key: logger", even on EasyR1's own
# examples/config.yaml); 2.3.x works. Stops with the fix when a newer omegaconf is installed for $PYTHON.
OMEGACONF_VERSION="$("$PYTHON" -c 'import omegaconf; print(omegaconf.__version__)' 2>/dev/null || true)"
case "$OMEGACONF_VERSION" in
  2.[4-9]*|2.[1-9][0-9]*|[3-9].*)
    echo "error: omegaconf $OMEGACONF_VERSION is installed for $PYTHON, and EasyR1 cannot load its config with it" \
         "(TupleConfig length 2 does not match type hint length 1, full_key: logger): $PYTHON -m pip install 'omegaconf<2.4'" >&2
    exit 2 ;;
esac
