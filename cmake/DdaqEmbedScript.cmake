# Script mode helper of ddaq_embed_text: hex-encodes IN into OUT.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT}.tmp
  "// Generated from ${IN}; do not edit.\n"
  "namespace ddaq { namespace embedded {\n"
  "static const char data_[] = {${bytes} 0x00};\n"
  "extern const char* const ${SYMBOL};\n"
  "const char* const ${SYMBOL} = data_;\n"
  "} }\n")
file(RENAME ${OUT}.tmp ${OUT})
