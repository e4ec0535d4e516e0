# Turns docs/gatehouse.cedarschema into a C string, so the schema policies
# are validated against is the documented one (one source of truth) and
# the binary needs no file at run time.
file(READ "${SRC_FILE}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
set(out "/* generated from docs/gatehouse.cedarschema by gateway/embed_schema.cmake */\n")
string(APPEND out "const char gw_policy_schema_text[] = {${bytes}0};\n")
file(WRITE "${OUT_FILE}.tmp" "${out}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT_FILE}.tmp" "${OUT_FILE}")
