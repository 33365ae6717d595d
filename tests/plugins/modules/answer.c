/* A module for tests/unit/test_module.c, built three ways: with this
 * sluice's stamp, with another build's, and with none. */
__attribute__((visibility("default"))) int module_answer(void);
__attribute__((visibility("default"))) int module_answer(void) { return 42; }
