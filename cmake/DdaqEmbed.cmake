# ddaq_embed_text(OUT_CPP SYMBOL FILE): generate a .cpp defining
#   extern const char* const SYMBOL;  (the file's bytes, NUL terminated)
# so the built binaries carry small data tables (geometry) without a runtime path.
function(ddaq_embed_text out_cpp symbol file)
  set(gen ${CMAKE_CURRENT_BINARY_DIR}/embedded_${symbol}.cpp)
  add_custom_command(
    OUTPUT ${gen}
    COMMAND ${CMAKE_COMMAND} -DIN=${file} -DOUT=${gen} -DSYMBOL=${symbol}
            -P ${PROJECT_SOURCE_DIR}/cmake/DdaqEmbedScript.cmake
    DEPENDS ${file} ${PROJECT_SOURCE_DIR}/cmake/DdaqEmbedScript.cmake
    COMMENT "Embedding ${file}")
  set(${out_cpp} ${gen} PARENT_SCOPE)
endfunction()
