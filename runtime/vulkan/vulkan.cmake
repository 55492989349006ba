# The Vulkan backend (docs/vulkan.md), included right after md_engine is
# defined. MD_VULKAN defaults to ON when the Vulkan loader/headers and glslc
# are found and to OFF otherwise, so the project builds without them. The
# shaders (vk_shaders/*.comp) are compiled by glslc at build time and their
# SPIR-V is embedded in the library: nothing is looked up at run time.
find_package(Vulkan QUIET)
find_program(MD_GLSLC NAMES glslc HINTS ${Vulkan_GLSLC_EXECUTABLE})
set(MD_VULKAN_AVAILABLE OFF)
if(Vulkan_FOUND AND MD_GLSLC)
  set(MD_VULKAN_AVAILABLE ON)
endif()
option(MD_VULKAN "Build the Vulkan backend" ${MD_VULKAN_AVAILABLE})
if(MD_VULKAN AND NOT MD_VULKAN_AVAILABLE)
  message(FATAL_ERROR "MD_VULKAN=ON needs the Vulkan loader and headers and glslc "
                      "(Debian: libvulkan-dev glslc); configure with -DMD_VULKAN=OFF to build without")
endif()
message(STATUS "Vulkan backend: ${MD_VULKAN}")

# fp16 arithmetic variants (docs/vulkan.md, "Precision"): these shaders are
# compiled a second time with -DMD_FP16 into NAME_f16. Without them (option
# OFF, or a glslc that cannot compile float16 arithmetic) the variants are
# embedded empty and the backend runs f32 on every device.
set(MD_VK_FP16_SHADERS gemm conv2d attention)
option(MD_VULKAN_FP16 "Build the fp16 arithmetic variants of the Vulkan shaders" ON)
if(MD_VULKAN AND MD_VULKAN_FP16)
  set(probe ${CMAKE_BINARY_DIR}/generated/fp16_probe.comp)
  file(WRITE ${probe} "#version 450\n"
    "#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require\n"
    "layout(local_size_x = 1) in;\n"
    "layout(std430, binding = 0) buffer B { float b[]; };\n"
    "shared f16vec2 s[2];\n"
    "void main() { s[0] = f16vec2(b[0], b[1]) * s[1]; b[0] = float(s[0].x); }\n")
  execute_process(COMMAND ${MD_GLSLC} -fshader-stage=compute --target-env=vulkan1.1 -Werror
                          -o ${CMAKE_BINARY_DIR}/generated/fp16_probe.spv ${probe}
                  RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT probe_rc EQUAL 0)
    message(WARNING "glslc cannot compile float16 arithmetic: the Vulkan backend runs f32 only")
    set(MD_VULKAN_FP16 OFF CACHE BOOL "Build the fp16 arithmetic variants of the Vulkan shaders" FORCE)
  endif()
endif()
if(MD_VULKAN)
  message(STATUS "Vulkan fp16 arithmetic variants: ${MD_VULKAN_FP16}")
endif()

if(MD_VULKAN)
  file(GLOB MD_VK_SHADER_FILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/vk_shaders/*.comp)
  file(GLOB MD_VK_SHADER_INCLUDES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/vk_shaders/*.glsl)
  set(MD_VK_SPV_DIR ${CMAKE_BINARY_DIR}/generated/spv)
  file(MAKE_DIRECTORY ${MD_VK_SPV_DIR})
  set(MD_VK_EMBEDDED)
  foreach(src ${MD_VK_SHADER_FILES})
    get_filename_component(name ${src} NAME_WE)
    set(spv ${MD_VK_SPV_DIR}/${name}.spv)
    set(emb ${MD_VK_SPV_DIR}/${name}_spv.c)
    add_custom_command(
      OUTPUT ${spv}
      COMMAND ${MD_GLSLC} -fshader-stage=compute --target-env=vulkan1.1 -O -Werror
              -I ${CMAKE_SOURCE_DIR}/vk_shaders -o ${spv} ${src}
      DEPENDS ${src} ${MD_VK_SHADER_INCLUDES}
      COMMENT "glslc ${name}.comp")
    add_custom_command(
      OUTPUT ${emb}
      COMMAND ${CMAKE_COMMAND} -DIN=${spv} -DOUT=${emb} -DSYMBOL=md_spv_${name}
              -P ${CMAKE_SOURCE_DIR}/tools/cmake/embed_file.cmake
      DEPENDS ${spv} ${CMAKE_SOURCE_DIR}/tools/cmake/embed_file.cmake
      COMMENT "Embedding ${name}.spv")
    list(APPEND MD_VK_EMBEDDED ${emb})
    if(name IN_LIST MD_VK_FP16_SHADERS)
      set(spv16 ${MD_VK_SPV_DIR}/${name}_f16.spv)
      set(emb16 ${MD_VK_SPV_DIR}/${name}_f16_spv.c)
      if(MD_VULKAN_FP16)
        add_custom_command(
          OUTPUT ${spv16}
          COMMAND ${MD_GLSLC} -fshader-stage=compute --target-env=vulkan1.1 -O -Werror -DMD_FP16=1
                  -I ${CMAKE_SOURCE_DIR}/vk_shaders -o ${spv16} ${src}
          DEPENDS ${src} ${MD_VK_SHADER_INCLUDES}
          COMMENT "glslc ${name}.comp (fp16)")
        add_custom_command(
          OUTPUT ${emb16}
          COMMAND ${CMAKE_COMMAND} -DIN=${spv16} -DOUT=${emb16} -DSYMBOL=md_spv_${name}_f16
                  -P ${CMAKE_SOURCE_DIR}/tools/cmake/embed_file.cmake
          DEPENDS ${spv16} ${CMAKE_SOURCE_DIR}/tools/cmake/embed_file.cmake
          COMMENT "Embedding ${name}_f16.spv")
      else()
        # size 0: the backend sees that this build has no fp16 variant (an
        # old .spv goes, so turning the option on again rebuilds the stub)
        file(REMOVE ${spv16})
        file(WRITE ${emb16} "/* fp16 variants not built (MD_VULKAN_FP16=OFF). */\n"
          "const unsigned char md_spv_${name}_f16[1] = {0};\n"
          "const unsigned long md_spv_${name}_f16_size = 0UL;\n")
      endif()
      list(APPEND MD_VK_EMBEDDED ${emb16})
    endif()
  endforeach()
  file(GLOB MD_VK_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/runtime/vulkan/*.c)
  target_sources(md_engine PRIVATE ${MD_VK_SOURCES} ${MD_VK_EMBEDDED})
  target_compile_definitions(md_engine PUBLIC MD_HAVE_VULKAN=1)
  target_link_libraries(md_engine PUBLIC Vulkan::Vulkan)
endif()
