/* Not a sluice plugin: it exports no sluice_plugin_v1. */
__attribute__((visibility("default"))) int some_other_library_function(void);
int some_other_library_function(void) { return 42; }
