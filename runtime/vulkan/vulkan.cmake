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
  endforeach()
  file(GLOB MD_VK_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/runtime/vulkan/*.c)
  target_sources(md_engine PRIVATE ${MD_VK_SOURCES} ${MD_VK_EMBEDDED})
  target_compile_definitions(md_engine PUBLIC MD_HAVE_VULKAN=1)
  target_link_libraries(md_engine PUBLIC Vulkan::Vulkan)
endif()
